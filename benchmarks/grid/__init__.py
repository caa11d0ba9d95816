"""Exported artifacts' speed: the artifacts found and the photos they are fed (artifacts), one
artifact on one provider (runners), the latency grid (measure), and what a model asks against what
the machine gives (compute)."""
