//! The shape classes of the synthetic set and their inside tests, in coordinates normalised to the
//! shape's half-extent (`u, v` in −1..1 cover its bounding box).

/// Category names, in category-id order (id = index + 1).
pub const CLASS_NAMES: [&str; 7] = [
    "circle", "square", "triangle", "diamond", "cross", "ring", "ellipse",
];

/// One shape class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Disc.
    Circle,
    /// Axis-aligned square.
    Square,
    /// Triangle pointing up, apex at the top centre, base along the bottom.
    Triangle,
    /// Square turned 45°.
    Diamond,
    /// Plus sign, arms a third of the extent wide.
    Cross,
    /// Annulus, inner radius half the outer.
    Ring,
    /// Ellipse twice as long on one axis.
    Ellipse,
}

impl Shape {
    /// All classes, by 0-based class index.
    pub const ALL: [Shape; 7] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
        Shape::Cross,
        Shape::Ring,
        Shape::Ellipse,
    ];

    /// 0-based class index.
    pub fn class_index(self) -> usize {
        Shape::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }

    /// Whether the normalised point (`u`, `v`) is inside.
    pub fn contains(self, u: f32, v: f32) -> bool {
        let r2 = u * u + v * v;
        match self {
            Shape::Circle | Shape::Ellipse => r2 <= 1.0,
            Shape::Square => u.abs() <= 1.0 && v.abs() <= 1.0,
            Shape::Triangle => v <= 1.0 && u.abs() <= (v + 1.0) * 0.5,
            Shape::Diamond => u.abs() + v.abs() <= 1.0,
            Shape::Cross => {
                let (au, av) = (u.abs(), v.abs());
                (au <= 1.0 / 3.0 && av <= 1.0) || (av <= 1.0 / 3.0 && au <= 1.0)
            }
            Shape::Ring => (0.25..=1.0).contains(&r2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_and_corners() {
        for s in Shape::ALL {
            assert!(!s.contains(1.01, 1.01), "{s:?}");
            assert_eq!(s.contains(0.0, 0.0), s != Shape::Ring, "{s:?}");
        }
        assert!(Shape::Square.contains(0.99, -0.99));
        assert!(Shape::Triangle.contains(0.0, -0.95) && !Shape::Triangle.contains(0.5, -0.5));
        assert!(Shape::Ring.contains(0.7, 0.0));
        assert_eq!(CLASS_NAMES.len(), Shape::ALL.len());
    }
}
