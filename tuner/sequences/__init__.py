"""The next-item task: training, full-ranking evaluation and kernel warm-up, shared by the
sequence models (SASRec and BERT4Rec, each an objective in `objectives`)."""
