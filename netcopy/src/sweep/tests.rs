use super::*;

fn confidence() -> Confidence {
    Confidence {
        target_pct: 2.5,
        min_reps: 3,
        max_reps: 16,
        budget: None,
    }
}

fn point(samples: &[f64]) -> PointState {
    PointState {
        timing_reps: samples.len() as u32,
        samples: samples.to_vec(),
    }
}

#[test]
fn every_point_runs_in_grid_order_up_to_the_minimum() {
    let state = [point(&[10.0, 10.0, 10.0]), point(&[1.0, 9.0, 5.0])];
    assert_eq!(confidence().round(3, &state, 0.0), vec![0, 1]);
}

#[test]
fn points_short_of_the_first_goal_go_first_closest_first() {
    let c = confidence();
    let state = [
        // ±1.3 %: past both goals.
        point(&[100.0, 101.0, 102.0, 101.0]),
        // ±3.8 %: within ±5 %, short of ±2.5 %.
        point(&[100.0, 103.0, 106.0, 103.0]),
        // ±11.8 % from 4 runs: ~22 runs for ±5 %, more than the maximum.
        point(&[100.0, 110.0, 120.0, 110.0]),
        // ±7.4 %: ~9 runs for ±5 %, 5 more.
        point(&[100.0, 106.0, 112.0, 106.0]),
        // ±6.2 %: ~6 runs for ±5 %, 2 more.
        point(&[100.0, 105.0, 110.0, 105.0]),
    ];
    assert_eq!(c.round(4, &state, f64::INFINITY), vec![4, 3]);
    // Time for 6 more runs: the point needing ~2 more, then not the one needing ~5 more.
    assert_eq!(c.round(4, &state, 6.0), vec![4]);
}

#[test]
fn then_the_target_and_the_points_that_cannot_reach_the_first_goal() {
    let c = confidence();
    let mut state = vec![
        point(&[100.0, 101.0, 102.0, 101.0]),
        point(&[100.0, 103.0, 106.0, 103.0]),
        point(&[100.0, 110.0, 120.0, 110.0]),
    ];
    assert_eq!(c.round(4, &state, f64::INFINITY), vec![1, 2]);
    // A point at its maximum gets no more runs, converged or not.
    state[2].timing_reps = c.max_reps;
    assert_eq!(c.round(4, &state, f64::INFINITY), vec![1]);
    state[1] = point(&[100.0, 100.5, 101.0, 100.5]);
    assert!(c.round(4, &state, f64::INFINITY).is_empty());
}
