"""The click-through task for DLRM: click data (generated batches and Criteo files), its
training with a captured step and row-wise Adagrad, AUC evaluation, its trial and memory."""
