"""From clips to the final video: bring each clip to the output spec, transitions, join, contact sheet."""
