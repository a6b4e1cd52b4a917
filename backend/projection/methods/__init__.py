"""2-D map methods, one module each (registered in :data:`backend.projection.MAP_METHODS`)."""
