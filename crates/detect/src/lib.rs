//! PP-YOLOE detector: model, losses, assigners, post-processing.
