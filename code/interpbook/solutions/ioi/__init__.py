"""Solutions of the chapter `ioi` (generated; see `interpbook.solutions`)."""
