"""Image validation: decode every image, check it, keep the clean ones, report the rest."""
