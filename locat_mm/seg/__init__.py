"""Components of the segmentation protocols, registered in MMSegmentation."""
