//! One synthetic image: a textured, noisy background with 0–10 shapes of any size from tiny to
//! large, possibly overlapping, each annotated with the box and area of its visible pixels.

use super::shapes::Shape;
use crate::transform::AugRng;

/// One annotated object.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneObject {
    /// Its class.
    pub shape: Shape,
    /// Visible pixels' box, COCO `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// Number of visible pixels.
    pub area: f64,
}

/// One rendered image.
#[derive(Clone, Debug)]
pub struct Scene {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// RGB bytes, HWC.
    pub rgb: Vec<u8>,
    /// Objects, bottom to top.
    pub objects: Vec<SceneObject>,
}

/// A shape placed on the canvas: centre, half-extents, colour.
struct Placed {
    shape: Shape,
    cx: f32,
    cy: f32,
    a: f32,
    b: f32,
    colour: [f32; 3],
}

impl Placed {
    /// Pixel rectangle `[x0, y0, x1, y1)` the shape may touch, inside the image.
    fn pixel_rect(&self, w: usize, h: usize) -> [usize; 4] {
        let clamp = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi);
        [
            clamp((self.cx - self.a).floor(), w),
            clamp((self.cy - self.b).floor(), h),
            clamp((self.cx + self.a).ceil() + 1.0, w),
            clamp((self.cy + self.b).ceil() + 1.0, h),
        ]
    }
}

fn overlap_fraction(a: [usize; 4], b: [usize; 4]) -> f64 {
    let iw = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let ih = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    if area_b == 0 {
        0.0
    } else {
        (iw * ih) as f64 / area_b as f64
    }
}

fn background(rng: &mut AugRng, w: usize, h: usize) -> Vec<f32> {
    let c0: [f32; 3] = std::array::from_fn(|_| rng.uniform(0.0, 255.0) as f32);
    let c1: [f32; 3] = std::array::from_fn(|_| rng.uniform(0.0, 255.0) as f32);
    let angle = rng.uniform(0.0, std::f64::consts::TAU) as f32;
    let (dx, dy) = (angle.cos(), angle.sin());
    let freq = rng.uniform(0.02, 0.4) as f32;
    let stripe_angle = rng.uniform(0.0, std::f64::consts::PI) as f32;
    let (sx, sy) = (stripe_angle.cos() * freq, stripe_angle.sin() * freq);
    let stripe_amp = rng.uniform(0.0, 40.0) as f32;
    let checker = rng.uniform(0.0, 1.0) < 0.3;
    let cell = rng.randint(4, 32) as usize;
    let noise = rng.uniform(2.0, 30.0) as f32;
    let span = (w + h) as f32;
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let t = ((x as f32 * dx + y as f32 * dy) / span + 0.5).clamp(0.0, 1.0);
            let texture = if checker {
                if (x / cell + y / cell).is_multiple_of(2) {
                    stripe_amp
                } else {
                    -stripe_amp
                }
            } else {
                stripe_amp * (x as f32 * sx + y as f32 * sy).sin()
            };
            let bits = rng.next_u64();
            for (c, (&a, &b)) in c0.iter().zip(&c1).enumerate() {
                let n = ((bits >> (c * 16)) & 0xffff) as f32 / 65535.0 * 2.0 - 1.0;
                px.push(a + (b - a) * t + texture + noise * n);
            }
        }
    }
    px
}

fn place(rng: &mut AugRng, w: usize, h: usize, min_object: f64) -> Placed {
    let shape = Shape::ALL[rng.index(Shape::ALL.len())];
    let min_side = w.min(h) as f64;
    // Log-uniform extent from `min_object` px to 70% of the short side: tiny, small, medium and
    // large objects.
    let largest = 0.7 * min_side;
    let smallest = min_object.clamp(1.0, largest);
    let extent = (smallest.ln() + rng.next_f64() * (largest.ln() - smallest.ln())).exp() as f32;
    let (mut a, mut b) = (extent / 2.0, extent / 2.0);
    if shape == Shape::Ellipse {
        if rng.uniform(0.0, 1.0) < 0.5 {
            b /= 2.0
        } else {
            a /= 2.0
        }
    } else if matches!(shape, Shape::Triangle | Shape::Diamond | Shape::Cross) {
        b *= rng.uniform(0.75, 1.25) as f32;
    }
    let cx = rng.uniform(a as f64 * 0.5, w as f64 - a as f64 * 0.5) as f32;
    let cy = rng.uniform(b as f64 * 0.5, h as f64 - b as f64 * 0.5) as f32;
    let colour = std::array::from_fn(|_| rng.uniform(0.0, 255.0) as f32);
    Placed {
        shape,
        cx,
        cy,
        a,
        b,
        colour,
    }
}

/// Renders image `index` of a split, each side drawn from `[0.75, 1.25]·size`; the same arguments
/// always give the same image.
pub fn render_scene(seed: u64, split: u64, index: u64, size: usize) -> Scene {
    render_scene_min(seed, split, index, size, DEFAULT_MIN_OBJECT)
}

/// The smallest object extent (px) [`render_scene`] draws.
pub const DEFAULT_MIN_OBJECT: f64 = 6.0;

/// [`render_scene`] with objects of at least `min_object` px (at most 70% of the short side).
pub fn render_scene_min(seed: u64, split: u64, index: u64, size: usize, min_object: f64) -> Scene {
    let mut rng = AugRng::from_keys(&[seed, split, index]);
    let side = |rng: &mut AugRng| (rng.uniform(0.75, 1.25) * size.max(16) as f64).round() as usize;
    let (w, h) = (side(&mut rng), side(&mut rng));
    render_with(rng, w, h, min_object)
}

/// Renders a `width × height` image (at least 16×16) for (seed, split, index).
pub fn render_scene_sized(seed: u64, split: u64, index: u64, width: usize, height: usize) -> Scene {
    let rng = AugRng::from_keys(&[seed, split, index, 1]);
    render_with(rng, width.max(16), height.max(16), DEFAULT_MIN_OBJECT)
}

fn render_with(mut rng: AugRng, w: usize, h: usize, min_object: f64) -> Scene {
    let mut canvas = background(&mut rng, w, h);
    let wanted = rng.randint(0, 11) as usize;
    let mut placed: Vec<Placed> = Vec::with_capacity(wanted);
    let mut rects: Vec<[usize; 4]> = Vec::with_capacity(wanted);
    for _ in 0..wanted * 20 {
        if placed.len() == wanted {
            break;
        }
        let mut p = place(&mut rng, w, h, min_object);
        let rect = p.pixel_rect(w, h);
        // Overlaps are welcome, hiding most of an earlier object is not.
        if rects.iter().any(|&r| overlap_fraction(rect, r) > 0.4) {
            continue;
        }
        // Keep contrast with the background under the shape's corner.
        let under: Vec<f32> = (0..3)
            .map(|c| canvas[((rect[1] * w + rect[0]) * 3 + c).min(canvas.len() - 1)])
            .collect();
        if p.colour
            .iter()
            .zip(&under)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            < 120.0
        {
            p.colour = p.colour.map(|v| 255.0 - v);
        }
        rects.push(rect);
        placed.push(p);
    }
    let mut owner = vec![u16::MAX; w * h];
    for (k, p) in placed.iter().enumerate() {
        let [x0, y0, x1, y1] = p.pixel_rect(w, h);
        let noise = rng.uniform(0.0, 20.0) as f32;
        for y in y0..y1 {
            let v = (y as f32 + 0.5 - p.cy) / p.b;
            for x in x0..x1 {
                let u = (x as f32 + 0.5 - p.cx) / p.a;
                if !p.shape.contains(u, v) {
                    continue;
                }
                owner[y * w + x] = k as u16;
                let bits = rng.next_u64();
                for c in 0..3 {
                    let n = ((bits >> (c * 16)) & 0xffff) as f32 / 65535.0 * 2.0 - 1.0;
                    canvas[(y * w + x) * 3 + c] = p.colour[c] + noise * n;
                }
            }
        }
    }
    let mut extent = vec![[usize::MAX, usize::MAX, 0, 0, 0]; placed.len()];
    for (i, &k) in owner.iter().enumerate() {
        if let Some(e) = extent.get_mut(k as usize) {
            let (x, y) = (i % w, i / w);
            *e = [
                e[0].min(x),
                e[1].min(y),
                e[2].max(x + 1),
                e[3].max(y + 1),
                e[4] + 1,
            ];
        }
    }
    let objects = placed
        .iter()
        .zip(&extent)
        .filter(|(_, e)| e[4] > 0)
        .map(|(p, e)| SceneObject {
            shape: p.shape,
            bbox: [
                e[0] as f64,
                e[1] as f64,
                (e[2] - e[0]) as f64,
                (e[3] - e[1]) as f64,
            ],
            area: e[4] as f64,
        })
        .collect();
    let rgb = canvas
        .iter()
        .map(|&v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    Scene {
        height: h,
        width: w,
        rgb,
        objects,
    }
}
