"""Transform module: learns the label vocabulary with tensorflow-transform."""
