//! Compiling correlation rules against the detection engine: which rule
//! matches feed which correlation, through which fields, and chains that
//! cannot work (a rule not loaded, a cycle) are problems.

use super::window::Entry;
use super::{CompiledCorrelation, CorrelationSet, Input, Observation};
use crate::detect::Engine;
use crate::event::Event;
use crate::sigma::correlation::SigmaCorrelation;
use crate::sigma::{LoadedCorrelation, RuleProblem};
use std::collections::HashMap;

impl CorrelationSet {
    /// Resolves references (rule or correlation, by id or name). Correlations
    /// with unknown references or in a reference cycle are reported and left out.
    pub fn build(
        loaded: Vec<LoadedCorrelation>,
        engine: &Engine,
    ) -> (CorrelationSet, Vec<RuleProblem>) {
        let mut problems = Vec::new();
        let names: Vec<(String, Option<String>)> = loaded
            .iter()
            .map(|l| {
                (
                    l.correlation.meta.id.clone(),
                    l.correlation.meta.name.clone(),
                )
            })
            .collect();
        let find_corr = |r: &str| {
            names
                .iter()
                .position(|(id, name)| id == r || name.as_deref() == Some(r))
        };
        let find_rule = |r: &str| {
            engine
                .rules()
                .iter()
                .position(|c| c.rule.meta.id == r || c.rule.meta.name.as_deref() == Some(r))
        };
        // Resolve each correlation's inputs first (indices into `loaded`).
        let mut resolved: Vec<Option<Vec<Input>>> = Vec::with_capacity(loaded.len());
        for l in &loaded {
            let mut inputs = Vec::new();
            let mut ok = true;
            for r in &l.correlation.rules {
                match (find_rule(r), find_corr(r)) {
                    (Some(i), _) => inputs.push(Input::Rule(i)),
                    (None, Some(c)) => inputs.push(Input::Correlation(c)),
                    (None, None) => {
                        problems.push(RuleProblem {
                            file: l.file.clone(),
                            pos: l.correlation.pos,
                            message: format!(
                                "correlation `{}` names rule `{r}`, which is not loaded",
                                l.correlation.meta.title
                            ),
                            limit: None,
                        });
                        ok = false;
                    }
                }
            }
            resolved.push(ok.then_some(inputs));
        }
        // Drop correlations in cycles or depending on dropped ones.
        let mut usable = vec![true; loaded.len()];
        for i in 0..loaded.len() {
            if !reaches_only_usable(i, &resolved, &mut Vec::new()) {
                usable[i] = false;
                if resolved[i].is_some() {
                    problems.push(RuleProblem {
                        file: loaded[i].file.clone(),
                        pos: loaded[i].correlation.pos,
                        message: format!(
                            "correlation `{}` references itself through a chain, or a correlation that failed",
                            loaded[i].correlation.meta.title
                        ),
                        limit: None,
                    });
                }
            }
        }
        // Renumber the usable ones.
        let mut new_index = vec![usize::MAX; loaded.len()];
        let mut next = 0;
        for (i, u) in usable.iter().enumerate() {
            if *u {
                new_index[i] = next;
                next += 1;
            }
        }
        let mut set = CorrelationSet::default();
        for (i, l) in loaded.into_iter().enumerate() {
            let (true, Some(inputs)) = (usable[i], resolved[i].take()) else {
                continue;
            };
            let inputs: Vec<Input> = inputs
                .into_iter()
                .map(|inp| match inp {
                    Input::Correlation(c) => Input::Correlation(new_index[c]),
                    rule => rule,
                })
                .collect();
            let c = &l.correlation;
            let group_fields = inputs
                .iter()
                .map(|inp| {
                    let (id, name) = match inp {
                        Input::Rule(r) => (
                            engine.rules()[*r].rule.meta.id.clone(),
                            engine.rules()[*r].rule.meta.name.clone(),
                        ),
                        Input::Correlation(_) => (String::new(), None),
                    };
                    c.group_by
                        .iter()
                        .map(|g| {
                            alias_field(c, g, &id, name.as_deref()).unwrap_or_else(|| g.clone())
                        })
                        .collect()
                })
                .collect();
            let me = set.correlations.len();
            for (pos, inp) in inputs.iter().enumerate() {
                match inp {
                    Input::Rule(r) => {
                        set.by_rule.entry(*r).or_default().push((me, pos));
                        if !c.generate {
                            set.silenced.insert(*r);
                        }
                    }
                    Input::Correlation(_) => {}
                }
            }
            set.correlations.push(CompiledCorrelation {
                span: c.timespan,
                rule: l.correlation,
                file: l.file,
                inputs,
                group_fields,
            });
        }
        set.by_correlation = vec![Vec::new(); set.correlations.len()];
        for (me, c) in set.correlations.iter().enumerate() {
            for (pos, inp) in c.inputs.iter().enumerate() {
                if let Input::Correlation(src) = inp {
                    set.by_correlation[*src].push((me, pos));
                    // The specification: only the outermost rule of a chain
                    // is generated, unless `generate` says otherwise.
                    if !c.rule.generate {
                        set.inner.insert(*src);
                    }
                }
            }
        }
        set.routes = set.chain_routes();
        // Whatever is referenced with generate: true alerts on its own after all.
        for c in &set.correlations {
            if c.rule.generate {
                for inp in &c.inputs {
                    match inp {
                        Input::Rule(r) => set.silenced.remove(r),
                        Input::Correlation(src) => set.inner.remove(src),
                    };
                }
            }
        }
        (set, problems)
    }

    /// How many correlations compiled.
    pub fn len(&self) -> usize {
        self.correlations.len()
    }

    /// True when no correlation compiled.
    pub fn is_empty(&self) -> bool {
        self.correlations.is_empty()
    }

    /// The correlation at index `i`, as observations and firings number them; None
    /// past the end.
    pub fn get(&self, i: usize) -> Option<&CompiledCorrelation> {
        self.correlations.get(i)
    }

    /// How a correlation's matches are routed between instances: the id of
    /// the correlation heading its chain, and whether the group is part of
    /// the key. Every link of a chain must see a group on one owner: when
    /// all links group by the same fields, a group's matches of every link
    /// go to one owner; when they do not (an inner link by user and host,
    /// the outer by user), one owner takes the whole chain.
    pub fn route(&self, correlation: usize) -> Option<(&str, bool)> {
        let &(head, by_group) = self.routes.get(correlation)?;
        let head = self.correlations.get(head)?;
        Some((head.rule.meta.id.as_str(), by_group))
    }

    /// [`CorrelationSet::route`] for every correlation: correlations joined
    /// by references (in either direction) form a chain, headed by its
    /// first outermost correlation (one nothing else references).
    fn chain_routes(&self) -> Vec<(usize, bool)> {
        let n = self.correlations.len();
        // Union-find over the references; tiny (one entry per correlation).
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (inner, outers) in self.by_correlation.iter().enumerate() {
            for &(outer, _) in outers {
                let (a, b) = (find(&mut parent, inner), find(&mut parent, outer));
                parent[a.max(b)] = a.min(b);
            }
        }
        let component: Vec<usize> = (0..n).map(|c| find(&mut parent, c)).collect();
        let mut head: HashMap<usize, usize> = HashMap::new();
        let mut by_group: HashMap<usize, bool> = HashMap::new();
        for (c, &k) in component.iter().enumerate() {
            let outermost = self.by_correlation.get(c).is_none_or(Vec::is_empty);
            if outermost {
                head.entry(k).or_insert(c);
            }
            let same = self.correlations[c].rule.group_by == self.correlations[k].rule.group_by;
            *by_group.entry(k).or_insert(true) &= same;
        }
        component
            .iter()
            .map(|k| {
                (
                    head.get(k).copied().unwrap_or(*k),
                    by_group.get(k).copied().unwrap_or(true),
                )
            })
            .collect()
    }

    /// Whether a detection rule's own matches are kept from alerting.
    pub fn is_silenced(&self, rule: usize) -> bool {
        self.silenced.contains(&rule)
    }

    /// Whether a correlation's firings are kept from alerting: it is an
    /// inner link of a chain, referenced without `generate: true`. Its
    /// firings still feed the chain and count in the metrics.
    pub fn is_inner_link(&self, correlation: usize) -> bool {
        self.inner.contains(&correlation)
    }

    /// The observations a match of `rule` on `event` makes, one per consuming correlation.
    pub fn observations(
        &self,
        rule: usize,
        event: &Event,
        evidence: &str,
        out: &mut Vec<Observation>,
    ) {
        let Some(consumers) = self.by_rule.get(&rule) else {
            return;
        };
        for &(c, input) in consumers {
            let corr = &self.correlations[c];
            let text = |field: &str| {
                event
                    .get(field)
                    .and_then(crate::event::scalar_text)
                    .map(|t| t.into_owned())
            };
            let Some(group) = corr.group_fields[input]
                .iter()
                .map(|f| text(f))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let value = match &corr.rule.condition.field {
                Some(f) => match text(f) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            out.push(Observation {
                correlation: c,
                group,
                entry: Entry {
                    time: event.time,
                    input,
                    value,
                    evidence: evidence.to_string(),
                },
                origin: event.origin.clone(),
            });
        }
    }
}

/// The field an alias names for the rule with this id or name.
fn alias_field(c: &SigmaCorrelation, group: &str, id: &str, name: Option<&str>) -> Option<String> {
    let (_, mapping) = c.aliases.iter().find(|(alias, _)| alias == group)?;
    mapping
        .iter()
        .find(|(rule, _)| rule == id || Some(rule.as_str()) == name)
        .map(|(_, field)| field.clone())
}

fn reaches_only_usable(i: usize, resolved: &[Option<Vec<Input>>], path: &mut Vec<usize>) -> bool {
    if path.contains(&i) {
        return false;
    }
    let Some(inputs) = resolved.get(i).and_then(Option::as_ref) else {
        return false;
    };
    path.push(i);
    let ok = inputs.iter().all(|inp| match inp {
        Input::Rule(_) => true,
        Input::Correlation(c) => reaches_only_usable(*c, resolved, path),
    });
    path.pop();
    ok
}
