"""The ffmpeg binary, probing clips, and the frames of continuity (a clip's last frame, stills): used by generation and assembly alike."""
