//! net.core and net.ipv4 sysctls that shape RX processing.
