"""omha plugin fence_x10 (work in progress: see its issue)."""
