"""One configuration trained under a time budget.

Backbones with offline pretrained weights (a registry in the spirit of timm's), input
adaptation (resize, channels, normalisation, frame sampling for video), the training
schedule with anytime test calls, and the baselines (the seed paper's linear model, a
small CNN from scratch, a fixed default configuration).

References: Baz et al., "Lessons learned from the AutoDL challenge" (AutoCLINT, Kakao
Brain, winner of AutoCV/AutoDL 2019); Stoll et al., Freiburg's AutoDL 2019 portfolio.
"""
