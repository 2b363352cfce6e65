//! The HyperLogLog distinct counter (precision 12, sparse and dense forms). Being built.
