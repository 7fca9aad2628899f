"""Task modules: one per kind of experiment, each implementing the six notebook steps."""
