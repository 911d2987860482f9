"""The imgclf command line and the demo; the system itself lives in models/, beam_pipelines/, api/."""
