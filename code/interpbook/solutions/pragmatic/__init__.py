"""Solutions of the chapter `pragmatic` (generated; see `interpbook.solutions`)."""
