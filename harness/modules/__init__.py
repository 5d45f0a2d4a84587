"""Lightning modules, one per compute shape."""
