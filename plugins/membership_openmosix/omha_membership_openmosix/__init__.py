"""omha plugin membership_openmosix (work in progress: see its issue)."""
