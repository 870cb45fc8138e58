"""Stage kinds, one file each, registered in :data:`leandl.registry.STAGES`."""
