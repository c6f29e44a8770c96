"""System checks for the video library (ids private_video.E0xx / W0xx)."""
