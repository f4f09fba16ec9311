//! Maps IRQ lines to (netdev, RX queue) from sysfs msi_irqs and IRQ-name patterns.
