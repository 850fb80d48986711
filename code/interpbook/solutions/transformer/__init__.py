"""Solutions of the chapter `transformer` (generated; see `interpbook.solutions`)."""
