from evidence_store.cli import main

main()
