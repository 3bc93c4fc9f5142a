"""omha plugin fence_powerstrip (work in progress: see its issue)."""
