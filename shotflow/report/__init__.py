"""What a run tells people: the manifest beside the video, the live terminal view, and whether a
video is already up to date (read from its manifest). Only the shell (the CLI, flows, tasks) imports it."""
