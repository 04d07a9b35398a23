"""The Prefect shell's servers and deployments, installed as `shotflow.deployments`: `server` (a
`prefect server start` child with bounded waits), `localserver` (the persistent one `shotflow
server` keeps), `storyboards` (a deployment per scheduled storyboard, for `serve` and `deploy`)."""
