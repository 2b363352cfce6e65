//! The mergeable quantile sketch (DDSketch-style, 1% relative error). Being built.
