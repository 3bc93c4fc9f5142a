"""omha plugin resource_mount (work in progress: see its issue)."""
