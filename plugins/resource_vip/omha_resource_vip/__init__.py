"""omha plugin resource_vip (work in progress: see its issue)."""
