"""The photos a run trains on: labelled folders split and decoded (datasets), CIFAR archives read
(cifar) and laid out once as class folders (cifar_cache), and catdog-train prepare/stats (prepare)."""
