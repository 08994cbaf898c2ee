"""labelme folders to VOC masks and COCO instances, by labelme v7.1.0's own rules.

parse (JSON and shapes, checked) -> image (embedded or beside the JSON, EXIF applied) ->
classes (ids, the numeric-suffix convention) -> rasterise (shape_to_mask, mask patches) ->
paint (class and object maps, instances) -> coco, writers (the files). worker runs one labelme
file per call in a process pool and plan gathers the check pass; segcli.data.labelme.convert drives
both passes.
"""
