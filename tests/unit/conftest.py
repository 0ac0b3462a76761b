import ceph_cluster

cluster = ceph_cluster.cluster      # one Ceph cluster for every host test that needs it
