"""Clinical documents: Composition/$document (R4) assembling document Bundles."""
