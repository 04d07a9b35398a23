"""The ffmpeg binary and probing clips: used by generation and assembly alike."""
