"""Writes an instances_train2017-sized COCO file (~450 MB, 118k images, 860k annotations with polygon
or RLE segmentations) to measure loading time and memory.

    python3 make_train_sized_instances.py OUT.json [--images 118287] [--annotations 860001]
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=118287)
    ap.add_argument("--annotations", type=int, default=860001)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    cats = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
    ids = sorted(rng.sample(range(1, 600000), a.images))
    with open(a.out, "w") as f:
        f.write('{"info": {"description": "COCO 2017 sized synthetic", "version": "1.0", "year": 2017}, '
                '"licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "x"}], "images": [')
        for n, i in enumerate(ids):
            f.write(("," if n else "") + f'{{"license": 3, "file_name": "{i:012d}.jpg", "coco_url": '
                    f'"http://images.cocodataset.org/train2017/{i:012d}.jpg", "height": 480, "width": 640, '
                    f'"date_captured": "2013-11-14 11:18:45", "flickr_url": "http://farm9.staticflickr.com/x.jpg", "id": {i}}}')
        f.write('], "annotations": [')
        for n in range(a.annotations):
            w, h = rng.uniform(2, 500), rng.uniform(2, 400)
            x, y = rng.uniform(0, 640 - min(w, 639)), rng.uniform(0, 480 - min(h, 479))
            if rng.random() < 0.01:
                counts = ",".join(str(rng.randrange(0, 400)) for _ in range(rng.randrange(20, 120)))
                seg = f'{{"counts": [{counts}], "size": [480, 640]}}'
                crowd = 1
            else:
                pts = ",".join(f"{rng.uniform(x, x + w):.2f},{rng.uniform(y, y + h):.2f}" for _ in range(rng.randrange(6, 40)))
                seg = f"[[{pts}]]"
                crowd = 0
            f.write(("," if n else "") + f'{{"segmentation": {seg}, "area": {w * h * 0.6:.4f}, "iscrowd": {crowd}, '
                    f'"image_id": {ids[rng.randrange(len(ids))]}, "bbox": [{x:.2f}, {y:.2f}, {w:.2f}, {h:.2f}], '
                    f'"category_id": {rng.choice(cats)}, "id": {n + 1}}}')
        f.write('], "categories": [')
        f.write(",".join(f'{{"supercategory": "s", "id": {c}, "name": "c{c}"}}' for c in cats))
        f.write("]}\n")


if __name__ == "__main__":
    main()
