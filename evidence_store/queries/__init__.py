"""Read-side queries of the evidence store (search, statistics, audit browsing, supervision lists, the
case, clip and dashboard read models), used by the web and the command line alike. They read through a
`Connection` and write nothing."""
