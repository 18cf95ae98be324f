"""The next-item task: training, full-ranking evaluation and kernel warm-up, shared by the
sequence models (SASRec; BERT4Rec next)."""
