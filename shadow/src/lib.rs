//! Shadow replay of candidate reuseport selectors (issue 5).
