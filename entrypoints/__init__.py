"""The entry layer: the `evidence` command, the station, web and worker start-up.

It sits above every other package and alone chooses the adapters (`wiring`, with
`evidence_store.bootstrap`). No product package imports it.
"""
