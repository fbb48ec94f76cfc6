"""Jobs composed from the library stages: the file jobs and ``churn run``'s main job; the CLI is a shell around them."""
