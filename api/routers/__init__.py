"""One router per resource: health, models, classification, batch jobs."""
