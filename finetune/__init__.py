"""One configuration trained under a time budget.

Backbones with offline pretrained weights (a registry in the spirit of timm's), input
adaptation (resize, channels, normalisation, frame sampling for video), the training
schedule with anytime test calls, and the baselines (the seed paper's linear model, a
small CNN from scratch, a fixed default configuration).

References: W. Baek, I. Kim, S. Kim, S. Lim, "AutoCLINT: The Winning Method in AutoCV
Challenge 2019", arXiv preprint, 2020 (Kakao Brain's AutoCV/AutoCV2 winner); Stoll et al.,
Freiburg's AutoDL 2019 portfolio.
"""
