//! Network links over rtnetlink.
