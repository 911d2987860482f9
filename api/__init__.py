"""The prediction service (FastAPI). Not built yet: issue #4 brings it.

Planned shape: an app factory, routers per resource, the model registry as a dependency,
dynamic batching over the same SavedModel signature the batch pipeline uses.
"""
