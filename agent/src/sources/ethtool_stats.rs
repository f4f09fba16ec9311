//! Per-queue driver statistics: SIOCETHTOOL ETHTOOL_GSTRINGS/GSTATS and the text of 'ethtool -S', with per-driver queue-name patterns.
