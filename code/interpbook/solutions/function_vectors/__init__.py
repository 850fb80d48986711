"""Solutions of the chapter `function_vectors` (generated; see `interpbook.solutions`)."""
