"""omha plugin membership_etcd (work in progress: see its issue)."""
