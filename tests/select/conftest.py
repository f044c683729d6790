"""The selection tests run small tensors: one torch thread avoids spin-waiting on cores another process is using
(two threads made a 256 × 128 SAE step 30× slower on the shared 2-core machine)."""

import torch

torch.set_num_threads(1)
