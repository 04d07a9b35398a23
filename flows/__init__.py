"""The Prefect shell's flows, installed as `shotflow.flows`: `render` (the render-storyboard flow:
plan, generate every shot as a task, assemble as clips land, report) and `earlystart` (`shotflow
run` generating before Prefect is up). Only the CLI and deployments import them."""
