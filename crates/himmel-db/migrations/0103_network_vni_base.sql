-- Where this region starts looking for free tenant VNIs. Chosen at random on
-- the first allocation and kept: two regions on one host would otherwise
-- both start at 1, and the kernel refuses a second VXLAN device with a VNI
-- already in use on the same UDP port. One row (id 1).
CREATE TABLE net_vni_base (
    id BIGINT PRIMARY KEY,
    base BIGINT NOT NULL
);
