//! Channel counts (rx, tx, combined) over ethtool netlink.
