"""The Prefect shell's tasks, installed as `shotflow.tasks`: thin wrappers over the core, one per
unit of work the flow retries or shows (generate a shot, normalise and join clips, artifacts in
the UI, the run's limits, the fal key from a Secret block). The core never imports them."""
